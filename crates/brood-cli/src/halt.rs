//! `--halt`: when a run stops early, and its exit status, exactly as GNU
//! parallel defines them.
//!
//! `WHEN,WHY=N` or `WHEN,WHY=N%`: WHEN is `now` (stop the running jobs)
//! or `soon` (let them finish); WHY counts failed, succeeded or finished
//! (`done`) jobs; a percentage is of all jobs. The short forms are GNU
//! parallel's: `0` never, `1` soon,fail=1, `2` now,fail=1, `-1`
//! soon,success=1, `-2` now,success=1, `N%` soon,fail=N%. brood also
//! takes `now` and `soon` alone for `now,fail=1` and `soon,fail=1`, which
//! its `--halt-on-error[=now]` used to mean.
//!
//! Exit status: with `fail=1` or `done=1`, the status of the job that
//! triggered the halt (its exit code, or 128 + its signal); with a count,
//! the number of failed jobs (at most 101); with a percentage, the
//! percentage of jobs that failed, rounded up; with `success`, 0 once it
//! triggered. If the halt never triggers, the count or percentage of
//! failures as above.

/// Start no new jobs (`soon`) or also stop the running ones (`now`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Let running jobs finish.
    Soon,
    /// Stop running jobs.
    Now,
}

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Failed jobs.
    Fail,
    /// Succeeded jobs.
    Success,
    /// Finished jobs.
    Done,
}

/// How many.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    /// A number of jobs.
    Count(u64),
    /// A fraction (0..=1) of all jobs.
    Fraction(f64),
}

/// A `--halt` policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Halt {
    /// When running jobs stop.
    pub when: When,
    /// What is counted.
    pub why: Why,
    /// How many.
    pub threshold: Threshold,
}

impl Halt {
    /// Parses `--halt`; `None` is "never".
    pub fn parse(text: &str) -> Result<Option<Halt>, String> {
        let bad = |why: &str| format!("invalid --halt value {text:?}: {why}");
        let long = match text {
            "0" | "never" => return Ok(None),
            "1" | "soon" => "soon,fail=1".to_string(),
            "2" | "now" => "now,fail=1".to_string(),
            "-1" => "soon,success=1".to_string(),
            "-2" => "now,success=1".to_string(),
            t if t.ends_with('%') && t[..t.len() - 1].bytes().all(|b| b.is_ascii_digit()) => {
                format!("soon,fail={t}")
            }
            t => t.to_string(),
        };
        let (when, rest) = long
            .split_once(',')
            .ok_or_else(|| bad("expected now|soon,fail|success|done=N|N%"))?;
        let when = match when {
            "now" => When::Now,
            "soon" => When::Soon,
            "never" => return Ok(None),
            _ => return Err(bad("it must start with never, soon or now")),
        };
        let (why, n) = rest
            .split_once('=')
            .ok_or_else(|| bad("expected fail=N, success=N or done=N"))?;
        let why = match why {
            "fail" => Why::Fail,
            "success" => Why::Success,
            "done" => Why::Done,
            _ => return Err(bad("the reason must be fail, success or done")),
        };
        let threshold = if let Some(pct) = n.strip_suffix('%') {
            let p: u32 = pct
                .parse()
                .map_err(|_| bad("expected a whole percentage"))?;
            if p == 0 || p > 100 {
                return Err(bad("the percentage must be 1..100"));
            }
            Threshold::Fraction(f64::from(p) / 100.0)
        } else {
            let c: u64 = n.parse().map_err(|_| bad("expected a number of jobs"))?;
            if c == 0 {
                return Err(bad("the number of jobs must be at least 1"));
            }
            Threshold::Count(c)
        };
        Ok(Some(Halt {
            when,
            why,
            threshold,
        }))
    }
}

/// Counts finished jobs against a policy and computes the exit status.
#[derive(Debug, Default)]
pub struct HaltState {
    policy: Option<Halt>,
    failed: u64,
    succeeded: u64,
    /// The exit status fixed when the halt triggered.
    exit: Option<u8>,
    triggered: bool,
}

impl HaltState {
    /// A state for `policy`.
    pub fn new(policy: Option<Halt>) -> HaltState {
        HaltState {
            policy,
            ..HaltState::default()
        }
    }

    /// Whether the policy needs the total number of jobs up front.
    pub fn needs_total(&self) -> bool {
        matches!(
            self.policy,
            Some(Halt {
                threshold: Threshold::Fraction(_),
                ..
            })
        )
    }

    /// Counts a finished job (`status` is its exit code or 128 + signal,
    /// 0 on success). Returns `Some` the first time the halt triggers.
    pub fn record(&mut self, ok: bool, status: u8, total: Option<usize>) -> Option<When> {
        if ok {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
        let policy = self.policy?;
        if self.triggered {
            return None;
        }
        let count = match policy.why {
            Why::Fail if !ok => self.failed,
            Why::Success if ok => self.succeeded,
            Why::Done => self.failed + self.succeeded,
            _ => return None,
        };
        let total = total.unwrap_or(0).max(1) as f64;
        let reached = match policy.threshold {
            Threshold::Count(n) => count >= n,
            Threshold::Fraction(f) => count as f64 >= total * f,
        };
        if !reached {
            return None;
        }
        self.triggered = true;
        self.exit = Some(match (policy.why, policy.threshold) {
            (Why::Success, _) => 0,
            (_, Threshold::Count(1)) => status,
            (_, Threshold::Count(_)) => self.failed.min(101) as u8,
            (_, Threshold::Fraction(_)) => (self.failed as f64 / total * 100.0).ceil() as u8,
        });
        Some(policy.when)
    }

    /// The run's exit status, given how many jobs were started.
    pub fn exit_status(&self, started: usize) -> u8 {
        if let Some(code) = self.exit {
            return code;
        }
        match self.policy.map(|p| p.threshold) {
            Some(Threshold::Fraction(_)) => {
                (self.failed as f64 / started.max(1) as f64 * 100.0).ceil() as u8
            }
            _ => self.failed.min(101) as u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(Halt::parse("0").unwrap(), None);
        let h = Halt::parse("2").unwrap().unwrap();
        assert_eq!(
            (h.when, h.why, h.threshold),
            (When::Now, Why::Fail, Threshold::Count(1))
        );
        let h = Halt::parse("25%").unwrap().unwrap();
        assert_eq!(
            (h.when, h.threshold),
            (When::Soon, Threshold::Fraction(0.25))
        );
        let h = Halt::parse("now,done=3").unwrap().unwrap();
        assert_eq!((h.why, h.threshold), (Why::Done, Threshold::Count(3)));
        assert_eq!(Halt::parse("-2").unwrap().unwrap().why, Why::Success);
        for bad in [
            "later",
            "now,fail",
            "now,oops=1",
            "now,fail=x",
            "now,fail=0",
            "soon,fail=101%",
            "echo",
        ] {
            assert!(Halt::parse(bad).is_err(), "{bad}");
        }
    }

    /// The statuses GNU parallel 20221122 gives for
    /// `parallel -j1 --halt H 'exit {}' ::: 0 3 0 4 0 5 0 0 0 0`.
    #[test]
    fn exit_statuses_match_gnu_parallel() {
        let codes = [0u8, 3, 0, 4, 0, 5, 0, 0, 0, 0];
        for (h, want_status, want_ran) in [
            ("now,fail=1", 3, 2),
            ("now,fail=2", 2, 4),
            ("now,success=1", 0, 1),
            ("soon,done=2", 1, 2),
            ("soon,fail=30%", 30, 6),
            ("now,fail=50%", 30, 10),
            ("now,success=50%", 0, 8),
            ("-1", 0, 1),
            ("never", 3, 10),
        ] {
            let mut st = HaltState::new(Halt::parse(h).unwrap());
            let mut ran = 0;
            for &c in &codes {
                ran += 1;
                if st.record(c == 0, c, Some(codes.len())).is_some() {
                    break;
                }
            }
            assert_eq!((st.exit_status(ran), ran), (want_status, want_ran), "{h}");
        }
    }
}
