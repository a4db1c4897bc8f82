//! `brood log merge A.jsonl B.jsonl ...`: one log from many.
//!
//! The attempts of each job (same key) are ordered by `"start"` (an attempt
//! without one first), then by `"attempt"`, then by the order the logs were
//! given and the line. Later attempts win, with one exception: an attempt
//! brood cut short (`stopped`, `low_memory`) has no result, so it never
//! supersedes one that has.
//! The merged log holds one record per job, the winner, copied as written
//! (with `"key"` added where the record lacked it), ordered by start time.
//!
//! Reported, one line each ([`Merged::problems`]):
//! - a **duplicate**: a job that ran again after an attempt that succeeded,
//!   so its work was done twice;
//! - a **conflict**: a job that succeeded and later failed or timed out (the
//!   later failure wins), or records of one key with different argvs;
//! - given the jobs expected (the inputs expanded as `run` would), each one
//!   **missing** from every log, and each logged job **unexpected** among
//!   them;
//! - the **malformed** lines of the logs.
//!
//! A failed attempt followed by a success (`--retry-failed`, or a retry) is
//! none of these: the success wins. The CLI should exit 0 only when
//! [`Merged::is_clean`], and still write the merged log otherwise.

use super::{has_result, Attempt, Location, LogFile, Malformed, Outcome};
use crate::jobkey::JobKey;
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

/// A job that should be in the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Its key: [`JobKey::of_argv`] of its expanded command.
    pub key: JobKey,
    /// What to call it (its input).
    pub label: String,
}

/// A job that ran again after it had succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    /// The job.
    pub key: JobKey,
    /// What to call it.
    pub label: String,
    /// Its first successful attempt.
    pub success: Location,
    /// The attempts after it that succeeded too, or were cut short.
    pub again: Vec<Location>,
}

/// Records of one job that disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// It succeeded, then a later attempt failed or timed out; the later
    /// attempt is kept.
    FailedAfterSuccess {
        /// The job.
        key: JobKey,
        /// What to call it.
        label: String,
        /// The first success.
        success: Location,
        /// The first failure after it.
        failure: Location,
        /// Whether that failure was a timeout.
        timed_out: bool,
    },
    /// Two records with this key hold different argvs.
    DifferentCommands {
        /// The key.
        key: JobKey,
        /// The first record.
        first: Location,
        /// The first record that differs from it.
        second: Location,
    },
}

/// The logs, merged.
#[derive(Debug)]
pub struct Merged {
    /// One attempt per job, the winner, ordered by start time (jobs without
    /// one last).
    pub jobs: Vec<Attempt>,
    /// How many logs were merged.
    pub files: usize,
    /// How many usable records they held.
    pub attempts: usize,
    /// Jobs run again after they succeeded.
    pub duplicates: Vec<Duplicate>,
    /// Jobs whose records disagree.
    pub conflicts: Vec<Conflict>,
    /// The expected jobs that no log holds; `None` when none were given.
    pub missing: Option<Vec<Expected>>,
    /// Indexes into `jobs` of the jobs that were not expected (empty when no
    /// expected jobs were given).
    pub unexpected: Vec<usize>,
    /// The lines that could not be used.
    pub malformed: Vec<Malformed>,
}

/// Merges `files`, given in order; see the module docs for the rules.
pub fn merge(files: Vec<LogFile>, expected: Option<&[Expected]>) -> Merged {
    let file_count = files.len();
    let mut attempts = 0;
    let mut malformed = Vec::new();
    // Jobs in the order their keys first appear, so reports are stable.
    let mut groups: Vec<Vec<(usize, Attempt)>> = Vec::new();
    let mut group_of: HashMap<JobKey, usize> = HashMap::new();
    for (file, log) in files.into_iter().enumerate() {
        malformed.extend(log.malformed);
        for attempt in log.attempts {
            attempts += 1;
            let next = groups.len();
            let group = *group_of.entry(attempt.key).or_insert(next);
            if group == next {
                groups.push(Vec::new());
            }
            groups[group].push((file, attempt));
        }
    }

    let mut duplicates = Vec::new();
    let mut conflicts = Vec::new();
    let mut winners = Vec::with_capacity(groups.len());
    for mut group in groups {
        group.sort_by(|(file_a, a), (file_b, b)| {
            (a.start, a.int("attempt").unwrap_or(0), file_a, a.at.line).cmp(&(
                b.start,
                b.int("attempt").unwrap_or(0),
                file_b,
                b.at.line,
            ))
        });
        check_commands(&group, &mut conflicts);
        check_reruns(&group, &mut duplicates, &mut conflicts);
        let winner = group
            .iter()
            .rposition(|(_, a)| has_result(a.outcome()))
            .unwrap_or(group.len() - 1);
        winners.push(group.swap_remove(winner));
    }
    winners.sort_by_key(|(file, a)| (a.start.is_none(), a.start, *file, a.at.line));
    let jobs: Vec<Attempt> = winners.into_iter().map(|(_, a)| a).collect();

    let (missing, unexpected) = match expected {
        None => (None, Vec::new()),
        Some(expected) => {
            let logged: HashSet<JobKey> = jobs.iter().map(|a| a.key).collect();
            let wanted: HashSet<JobKey> = expected.iter().map(|e| e.key).collect();
            // Inputs that expand to the same command are one job: listed once.
            let mut listed = HashSet::new();
            let missing = expected
                .iter()
                .filter(|e| !logged.contains(&e.key) && listed.insert(e.key))
                .cloned()
                .collect();
            let unexpected = (0..jobs.len())
                .filter(|&i| !wanted.contains(&jobs[i].key))
                .collect();
            (Some(missing), unexpected)
        }
    };
    Merged {
        jobs,
        files: file_count,
        attempts,
        duplicates,
        conflicts,
        missing,
        unexpected,
        malformed,
    }
}

/// Records one conflict if the job's records hold different argvs.
fn check_commands(group: &[(usize, Attempt)], conflicts: &mut Vec<Conflict>) {
    let mut with_argv = group
        .iter()
        .filter_map(|(_, a)| a.record.get("argv").map(|argv| (argv, a)));
    let Some((first_argv, first)) = with_argv.next() else {
        return;
    };
    if let Some((_, second)) = with_argv.find(|(argv, _)| argv != &first_argv) {
        conflicts.push(Conflict::DifferentCommands {
            key: first.key,
            first: first.at.clone(),
            second: second.at.clone(),
        });
    }
}

/// Records what ran after the job's first success.
fn check_reruns(
    group: &[(usize, Attempt)],
    duplicates: &mut Vec<Duplicate>,
    conflicts: &mut Vec<Conflict>,
) {
    let Some(first_ok) = group.iter().position(|(_, a)| a.outcome() == Outcome::Ok) else {
        return;
    };
    let success = &group[first_ok].1;
    let mut again = Vec::new();
    let mut failed = false;
    for (_, later) in &group[first_ok + 1..] {
        match later.outcome() {
            Outcome::Ok | Outcome::Stopped | Outcome::LowMemory => again.push(later.at.clone()),
            outcome @ (Outcome::Failed | Outcome::TimedOut) => {
                if !failed {
                    failed = true;
                    conflicts.push(Conflict::FailedAfterSuccess {
                        key: success.key,
                        label: success.label(),
                        success: success.at.clone(),
                        failure: later.at.clone(),
                        timed_out: outcome == Outcome::TimedOut,
                    });
                }
            }
        }
    }
    if !again.is_empty() {
        duplicates.push(Duplicate {
            key: success.key,
            label: success.label(),
            success: success.at.clone(),
            again,
        });
    }
}

impl Merged {
    /// Writes the merged log: one line per job.
    pub fn write_jsonl(&self, out: &mut impl Write) -> io::Result<()> {
        for job in &self.jobs {
            out.write_all(job.to_line().as_bytes())?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Whether nothing is reported: no duplicate, conflict, malformed line,
    /// missing or unexpected job.
    pub fn is_clean(&self) -> bool {
        self.duplicates.is_empty()
            && self.conflicts.is_empty()
            && self.malformed.is_empty()
            && self.missing.as_ref().is_none_or(Vec::is_empty)
            && self.unexpected.is_empty()
    }

    /// Each problem as one line, for stderr.
    pub fn problems(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for m in &self.malformed {
            lines.push(format!("skipped {m}"));
        }
        for d in &self.duplicates {
            let again: Vec<String> = d.again.iter().map(Location::to_string).collect();
            lines.push(format!(
                "duplicate: job {:?} ran again after it succeeded ({}): {}",
                d.label,
                d.success,
                again.join(", ")
            ));
        }
        for c in &self.conflicts {
            lines.push(match c {
                Conflict::FailedAfterSuccess {
                    label,
                    success,
                    failure,
                    timed_out,
                    ..
                } => format!(
                    "conflict: job {label:?} succeeded ({success}), then {} ({failure}); \
                     the later attempt is kept",
                    if *timed_out { "timed out" } else { "failed" }
                ),
                Conflict::DifferentCommands { key, first, second } => format!(
                    "conflict: key {key} stands for two different commands ({first}, {second})"
                ),
            });
        }
        for e in self.missing.iter().flatten() {
            lines.push(format!("missing: job {:?} never ran", e.label));
        }
        for &i in &self.unexpected {
            let job = &self.jobs[i];
            lines.push(format!(
                "unexpected: job {:?} ({}) is not among the expected jobs",
                job.label(),
                job.at
            ));
        }
        lines
    }

    /// One line: what was merged, and how many problems of each kind.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "merged {} log{}: {} job{} from {} attempt{}; {} duplicate{}, {} conflict{}, \
             {} malformed line{}",
            self.files,
            plural(self.files),
            self.jobs.len(),
            plural(self.jobs.len()),
            self.attempts,
            plural(self.attempts),
            self.duplicates.len(),
            plural(self.duplicates.len()),
            self.conflicts.len(),
            plural(self.conflicts.len()),
            self.malformed.len(),
            plural(self.malformed.len()),
        );
        if let Some(missing) = &self.missing {
            s.push_str(&format!(
                ", {} missing, {} unexpected",
                missing.len(),
                self.unexpected.len()
            ));
        }
        s
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use crate::jobkey::JobKey;
    use crate::logtool::merge::{Conflict, Duplicate};
    use crate::logtool::tests::{line, log};
    use crate::logtool::{merge, read_log, Attempt, Expected, Location, Merged, Outcome};

    fn inputs(merged: &Merged) -> Vec<String> {
        merged.jobs.iter().map(Attempt::label).collect()
    }

    fn expected(labels: &[&str]) -> Vec<Expected> {
        labels
            .iter()
            .map(|l| Expected {
                key: JobKey::of_argv(["work", l]),
                label: l.to_string(),
            })
            .collect()
    }

    #[test]
    fn shards_merge_into_one_log_in_start_order() {
        let a = log(
            "log.0.jsonl",
            &[line("a", Some(0), 3000, ""), line("c", Some(1), 1000, "")],
        );
        let b = log("log.1.jsonl", &[line("b", Some(0), 2000, "")]);
        let m = merge(vec![a, b], Some(&expected(&["a", "b", "c"])));
        assert_eq!(inputs(&m), ["c", "b", "a"]);
        assert_eq!((m.files, m.attempts), (2, 3));
        assert!(m.is_clean(), "{:?}", m.problems());
        assert_eq!(
            m.summary(),
            "merged 2 logs: 3 jobs from 3 attempts; 0 duplicates, 0 conflicts, \
             0 malformed lines, 0 missing, 0 unexpected"
        );
        let mut out = Vec::new();
        m.write_jsonl(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let merged = read_log("all", text.as_bytes()).unwrap();
        assert_eq!(merged.attempts.len(), 3);
        assert_eq!(text.lines().next().unwrap(), line("c", Some(1), 1000, ""));
    }

    #[test]
    fn a_resumed_job_is_kept_once_with_its_success() {
        // The cancelled run logged "b" as stopped; the resumed run, appending
        // to the same log, ran it to success.
        let shard = log(
            "log.0.jsonl",
            &[
                line("a", Some(0), 1000, ""),
                line("b", None, 1500, ",\"outcome\":\"stopped\""),
                line("b", Some(0), 9000, ""),
            ],
        );
        let m = merge(vec![shard], None);
        assert_eq!(inputs(&m), ["a", "b"]);
        assert_eq!(m.jobs[1].at.line, 3);
        assert!(m.is_clean(), "{:?}", m.problems());
        assert_eq!(m.missing, None);
    }

    #[test]
    fn a_failure_retried_to_success_is_clean() {
        let first = log("first", &[line("a", Some(2), 1000, "")]);
        let retry = log("retry", &[line("a", Some(0), 5000, "")]);
        let m = merge(vec![first, retry], None);
        assert_eq!(m.jobs.len(), 1);
        assert_eq!(&*m.jobs[0].at.file, "retry");
        assert!(m.is_clean());
    }

    #[test]
    fn reruns_after_a_success_are_duplicates() {
        let one = log(
            "one",
            &[line("a", Some(0), 1000, ""), line("b", Some(0), 1100, "")],
        );
        let two = log(
            "two",
            &[
                line("a", Some(0), 4000, ""),
                line("b", None, 4100, ",\"outcome\":\"stopped\""),
            ],
        );
        let m = merge(vec![one, two], None);
        let at = |file: &str, line| Location {
            file: file.into(),
            line,
        };
        assert_eq!(
            m.duplicates,
            [
                Duplicate {
                    key: JobKey::of_argv(["work", "a"]),
                    label: "a".into(),
                    success: at("one", 1),
                    again: vec![at("two", 1)],
                },
                Duplicate {
                    key: JobKey::of_argv(["work", "b"]),
                    label: "b".into(),
                    success: at("one", 2),
                    again: vec![at("two", 2)],
                },
            ]
        );
        // The later success wins; a stopped re-run never displaces one.
        // (The merged log is in start order: b's winner started first.)
        assert_eq!(inputs(&m), ["b", "a"]);
        assert_eq!(m.jobs[0].at.to_string(), "one:2");
        assert_eq!(m.jobs[1].at.to_string(), "two:1");
        assert!(!m.is_clean());
        assert_eq!(
            m.problems()[0],
            "duplicate: job \"a\" ran again after it succeeded (one:1): two:1"
        );
    }

    #[test]
    fn the_same_log_twice_is_a_duplicate() {
        let lines = [line("a", Some(0), 1000, "")];
        let m = merge(vec![log("x", &lines), log("x", &lines)], None);
        assert_eq!(m.jobs.len(), 1);
        assert_eq!(m.duplicates.len(), 1);
    }

    #[test]
    fn a_failure_after_a_success_is_a_conflict_and_wins() {
        let one = log("one", &[line("a", Some(0), 1000, "")]);
        let two = log(
            "two",
            &[
                line("a", Some(1), 2000, ""),
                line("a", None, 3000, ",\"outcome\":\"timed_out\""),
            ],
        );
        let m = merge(vec![two, one], None);
        assert_eq!(m.conflicts.len(), 1, "one conflict per job");
        assert_eq!(m.jobs[0].at.to_string(), "two:2");
        assert_eq!(
            m.problems(),
            ["conflict: job \"a\" succeeded (one:1), then failed (two:1); the later attempt is kept"]
        );
        let timeout = log(
            "t",
            &[
                line("a", Some(0), 1000, ""),
                line("a", None, 2000, ",\"outcome\":\"timed_out\""),
            ],
        );
        let m = merge(vec![timeout], None);
        assert!(
            m.problems()[0].contains("then timed out (t:2)"),
            "{:?}",
            m.problems()
        );
    }

    #[test]
    fn attempts_are_ordered_by_start_then_by_the_order_given() {
        // The log given last holds the earlier attempt: start time decides.
        let late = log("late", &[line("a", Some(0), 9000, "")]);
        let early = log("early", &[line("a", Some(3), 1000, "")]);
        let m = merge(vec![late, early], None);
        assert_eq!(&*m.jobs[0].at.file, "late");
        assert!(m.is_clean());
        // Equal starts: the order given decides; no start sorts first.
        let x = log("x", &[line("a", Some(1), 1000, "")]);
        let y = log("y", &[line("a", Some(0), 1000, "")]);
        assert_eq!(&*merge(vec![x, y], None).jobs[0].at.file, "y");
        let bare = read_log("bare", br#"{"argv":["work","a"],"exit_code":1}"#.as_slice()).unwrap();
        let timed = log("timed", &[line("a", Some(0), 1000, "")]);
        let m = merge(vec![timed, bare], None);
        assert_eq!(&*m.jobs[0].at.file, "timed");
        // Jobs without a start come last in the merged log.
        let bare = read_log("bare", br#"{"argv":["work","z"],"exit_code":0}"#.as_slice()).unwrap();
        let timed = log("timed", &[line("a", Some(0), 1000, "")]);
        assert_eq!(inputs(&merge(vec![bare, timed], None)), ["a", "work z"]);
    }

    #[test]
    fn an_attempt_number_orders_attempts_with_the_same_start() {
        let l = log(
            "l",
            &[
                line("a", Some(0), 1000, ",\"attempt\":2"),
                line("a", Some(1), 1000, ",\"attempt\":1"),
            ],
        );
        let m = merge(vec![l], None);
        assert_eq!(m.jobs[0].at.line, 1);
        assert!(m.is_clean(), "{:?}", m.problems());
    }

    #[test]
    fn a_job_only_ever_stopped_is_kept_not_missing() {
        let l = log(
            "l",
            &[
                line("a", None, 1000, ",\"outcome\":\"stopped\""),
                line("a", None, 2000, ",\"outcome\":\"stopped\""),
            ],
        );
        let m = merge(vec![l], Some(&expected(&["a"])));
        assert_eq!(m.jobs[0].at.line, 2);
        assert_eq!(m.jobs[0].outcome(), Outcome::Stopped);
        assert_eq!(m.missing, Some(vec![]));
        assert!(m.is_clean());
    }

    #[test]
    fn missing_and_unexpected_jobs() {
        let l = log(
            "l",
            &[line("b", Some(0), 1000, ""), line("zz", Some(0), 2000, "")],
        );
        let m = merge(vec![l], Some(&expected(&["a", "b", "c", "a"])));
        let missing: Vec<&str> = m
            .missing
            .iter()
            .flatten()
            .map(|e| e.label.as_str())
            .collect();
        assert_eq!(missing, ["a", "c"]);
        assert_eq!(m.unexpected, [1]);
        assert_eq!(
            m.problems(),
            [
                "missing: job \"a\" never ran",
                "missing: job \"c\" never ran",
                "unexpected: job \"zz\" (l:2) is not among the expected jobs",
            ]
        );
        assert!(!m.is_clean());
    }

    #[test]
    fn one_key_for_two_commands_is_a_conflict() {
        let key = JobKey::of_argv(["work", "a"]);
        let text = format!(
            "{{\"key\":\"{key}\",\"argv\":[\"work\",\"a\"],\"exit_code\":0}}\n\
             {{\"key\":\"{key}\",\"argv\":[\"work\",\"b\"],\"exit_code\":0}}\n"
        );
        let m = merge(vec![read_log("k", text.as_bytes()).unwrap()], None);
        assert!(matches!(
            &m.conflicts[..],
            [Conflict::DifferentCommands { first, second, .. }] if first.line == 1 && second.line == 2
        ));
    }

    #[test]
    fn malformed_lines_are_reported_and_skipped() {
        let text = format!("{}\n{{oops\n", line("a", Some(0), 1000, ""));
        let m = merge(vec![read_log("m.jsonl", text.as_bytes()).unwrap()], None);
        assert_eq!(m.jobs.len(), 1);
        assert!(!m.is_clean());
        assert!(
            m.problems()[0].starts_with("skipped m.jsonl:2: not JSON"),
            "{:?}",
            m.problems()
        );
    }

    #[test]
    fn nothing_to_merge() {
        let m = merge(vec![], None);
        assert!(m.jobs.is_empty() && m.is_clean());
        assert_eq!(
            m.summary(),
            "merged 0 logs: 0 jobs from 0 attempts; 0 duplicates, 0 conflicts, 0 malformed lines"
        );
    }
}
