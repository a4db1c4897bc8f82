//! `brood log report FILE...`: a whole run summed up, from its merged log.
//!
//! Over the jobs of a [`Merged`] log (one attempt each, the winner):
//! - counts: ok, failed, timed out, stopped, low memory, and missing where
//!   the jobs expected were given, plus the merge's problems;
//! - CPU: user and system seconds in all, and the jobs that used most. A job
//!   counts its whole process tree (`tree_user_s`, `tree_sys_s`) where the
//!   log has those figures, else its leader (`user_s`, `sys_s`);
//! - peak memory: the largest `tree_peak_bytes`, else `max_rss_bytes`;
//! - runtime: summed over jobs, the span from the first start to the last
//!   end, and the slowest jobs;
//! - the histogram of exit codes, and of the signals that ended jobs.
//!
//! [`Report::render_text`] is for people (a terminal), [`Report::to_json`]
//! for programs (`--json`).

use super::{Attempt, Merged, Outcome};
use crate::jobkey::JobKey;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

/// One job's figure in a ranking.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// The job.
    pub key: JobKey,
    /// What to call it.
    pub label: String,
    /// Seconds, or bytes.
    pub value: f64,
}

/// A run, summed up.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Logs merged.
    pub files: usize,
    /// Jobs (one per key).
    pub jobs: usize,
    /// Records read.
    pub attempts: usize,
    /// Jobs that exited 0.
    pub ok: usize,
    /// Jobs that failed.
    pub failed: usize,
    /// Jobs that timed out.
    pub timed_out: usize,
    /// Jobs brood stopped before they could finish, in every attempt.
    pub stopped: usize,
    /// Jobs stopped by `--memfree` with no attempt left.
    pub low_memory: usize,
    /// Expected jobs that never ran; `None` when none were given.
    pub missing: Option<usize>,
    /// Jobs run again after they succeeded.
    pub duplicates: usize,
    /// Jobs whose records disagree.
    pub conflicts: usize,
    /// Lines that could not be used.
    pub malformed: usize,
    /// User CPU seconds, all jobs.
    pub user_s: f64,
    /// System CPU seconds, all jobs.
    pub sys_s: f64,
    /// Jobs whose CPU was counted over their whole process tree.
    pub whole_tree_jobs: usize,
    /// The jobs that used most CPU, most first.
    pub top_cpu: Vec<Figure>,
    /// The job with the largest peak memory, in bytes.
    pub peak_memory: Option<Figure>,
    /// Runtime summed over jobs, in seconds.
    pub runtime_s: f64,
    /// From the first start to the last end, in seconds.
    pub span_s: Option<f64>,
    /// The slowest jobs, slowest first.
    pub slowest: Vec<Figure>,
    /// Jobs by exit code.
    pub exit_codes: BTreeMap<i64, usize>,
    /// Jobs ended by a signal, by signal number.
    pub signals: BTreeMap<i64, usize>,
}

/// The report of `merged`, ranking `top` jobs in each list.
pub fn report(merged: &Merged, top: usize) -> Report {
    let mut r = Report {
        files: merged.files,
        jobs: merged.jobs.len(),
        attempts: merged.attempts,
        ok: 0,
        failed: 0,
        timed_out: 0,
        stopped: 0,
        low_memory: 0,
        missing: merged.missing.as_ref().map(Vec::len),
        duplicates: merged.duplicates.len(),
        conflicts: merged.conflicts.len(),
        malformed: merged.malformed.len(),
        user_s: 0.0,
        sys_s: 0.0,
        whole_tree_jobs: 0,
        top_cpu: Vec::new(),
        peak_memory: None,
        runtime_s: 0.0,
        span_s: None,
        slowest: Vec::new(),
        exit_codes: BTreeMap::new(),
        signals: BTreeMap::new(),
    };
    let mut cpu = Vec::new();
    let mut memory = Vec::new();
    let mut runtime = Vec::new();
    let mut first_start: Option<SystemTime> = None;
    let mut last_end: Option<SystemTime> = None;
    for job in &merged.jobs {
        match job.outcome() {
            Outcome::Ok => r.ok += 1,
            Outcome::Failed => r.failed += 1,
            Outcome::TimedOut => r.timed_out += 1,
            Outcome::Stopped => r.stopped += 1,
            Outcome::LowMemory => r.low_memory += 1,
        }
        match (job.int("exit_code"), job.int("signal")) {
            (Some(code), _) => *r.exit_codes.entry(code).or_default() += 1,
            (None, Some(signal)) => *r.signals.entry(signal).or_default() += 1,
            (None, None) => {}
        }
        let (user, sys) = match (job.number("tree_user_s"), job.number("tree_sys_s")) {
            (None, None) => (job.number("user_s"), job.number("sys_s")),
            tree => {
                r.whole_tree_jobs += 1;
                tree
            }
        };
        let (user, sys) = (user.unwrap_or(0.0), sys.unwrap_or(0.0));
        r.user_s += user;
        r.sys_s += sys;
        cpu.push(figure(job, user + sys));
        if let Some(bytes) = job
            .number("tree_peak_bytes")
            .or_else(|| job.number("max_rss_bytes"))
        {
            memory.push(figure(job, bytes));
        }
        let seconds = job.number("runtime_s").filter(|s| *s >= 0.0);
        if let Some(seconds) = seconds {
            r.runtime_s += seconds;
            runtime.push(figure(job, seconds));
        }
        if let Some(start) = job.start {
            let end = start + Duration::from_secs_f64(seconds.unwrap_or(0.0));
            first_start = Some(first_start.map_or(start, |t| t.min(start)));
            last_end = Some(last_end.map_or(end, |t| t.max(end)));
        }
    }
    if let (Some(first), Some(last)) = (first_start, last_end) {
        r.span_s = Some(last.duration_since(first).unwrap_or_default().as_secs_f64());
    }
    r.top_cpu = ranked(cpu, top);
    r.peak_memory = ranked(memory, 1).pop();
    r.slowest = ranked(runtime, top);
    r
}

fn figure(job: &Attempt, value: f64) -> Figure {
    Figure {
        key: job.key,
        label: job.label(),
        value,
    }
}

/// The `top` largest positive figures, largest first; ties by label.
fn ranked(mut figures: Vec<Figure>, top: usize) -> Vec<Figure> {
    figures.retain(|f| f.value > 0.0);
    figures.sort_by(|a, b| {
        b.value
            .total_cmp(&a.value)
            .then_with(|| a.label.cmp(&b.label))
    });
    figures.truncate(top);
    figures
}

impl Report {
    /// The report for people: one heading per line, lists indented under it.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let mut counts = format!(
            "{} ok, {} failed, {} timed out, {} stopped",
            self.ok, self.failed, self.timed_out, self.stopped
        );
        if self.low_memory > 0 {
            let _ = write!(counts, ", {} low memory", self.low_memory);
        }
        if let Some(missing) = self.missing {
            let _ = write!(counts, ", {missing} missing");
        }
        let _ = writeln!(
            s,
            "{:<12} {} from {} log{} ({} attempts): {counts}",
            "jobs",
            self.jobs,
            self.files,
            if self.files == 1 { "" } else { "s" },
            self.attempts,
        );
        if self.duplicates + self.conflicts + self.malformed > 0 {
            let _ = writeln!(
                s,
                "{:<12} {} duplicates, {} conflicts, {} malformed lines (brood log merge lists them)",
                "problems", self.duplicates, self.conflicts, self.malformed
            );
        }
        let scope = match self.whole_tree_jobs {
            0 => "job leaders only".to_string(),
            n if n == self.jobs => "whole process trees".to_string(),
            n => format!("whole process trees for {n} of {} jobs", self.jobs),
        };
        let _ = writeln!(
            s,
            "{:<12} {} (user {}, system {}; {scope})",
            "cpu",
            seconds(self.user_s + self.sys_s),
            seconds(self.user_s),
            seconds(self.sys_s),
        );
        list(&mut s, "top cpu", &self.top_cpu, seconds);
        if let Some(peak) = &self.peak_memory {
            list(&mut s, "peak memory", std::slice::from_ref(peak), bytes);
        }
        let span = self
            .span_s
            .map(|x| format!("; {} from the first start to the last end", seconds(x)))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{:<12} {} over all jobs{span}",
            "runtime",
            seconds(self.runtime_s)
        );
        list(&mut s, "slowest", &self.slowest, seconds);
        histogram(&mut s, "exit codes", &self.exit_codes);
        histogram(&mut s, "signals", &self.signals);
        s
    }

    /// The report for programs.
    pub fn to_json(&self) -> Value {
        let figures = |list: &[Figure], unit: &str| -> Value {
            list.iter()
                .map(|f| json!({"key": f.key.to_string(), "label": f.label, unit: micros(f.value)}))
                .collect()
        };
        let histogram = |h: &BTreeMap<i64, usize>| -> Value {
            h.iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        json!({
            "files": self.files,
            "jobs": self.jobs,
            "attempts": self.attempts,
            "counts": {
                "ok": self.ok,
                "failed": self.failed,
                "timed_out": self.timed_out,
                "stopped": self.stopped,
                "low_memory": self.low_memory,
                "missing": self.missing,
            },
            "problems": {
                "duplicates": self.duplicates,
                "conflicts": self.conflicts,
                "malformed": self.malformed,
            },
            "cpu": {
                "total_s": micros(self.user_s + self.sys_s),
                "user_s": micros(self.user_s),
                "sys_s": micros(self.sys_s),
                "whole_tree_jobs": self.whole_tree_jobs,
                "top": figures(&self.top_cpu, "cpu_s"),
            },
            "peak_memory": self.peak_memory.as_ref().map(|f| {
                json!({"key": f.key.to_string(), "label": f.label, "bytes": f.value as u64})
            }),
            "runtime": {
                "total_s": micros(self.runtime_s),
                "span_s": self.span_s.map(micros),
                "slowest": figures(&self.slowest, "runtime_s"),
            },
            "exit_codes": histogram(&self.exit_codes),
            "signals": histogram(&self.signals),
        })
    }
}

/// Seconds rounded to the microsecond, the log's own precision: sums of
/// microsecond figures would otherwise print as `0.16345799999999996`.
fn micros(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn list(s: &mut String, heading: &str, figures: &[Figure], unit: fn(f64) -> String) {
    for (i, f) in figures.iter().enumerate() {
        let heading = if i == 0 { heading } else { "" };
        let _ = writeln!(
            s,
            "{heading:<12} {:>10}  {}",
            unit(f.value),
            shorten(&f.label)
        );
    }
}

fn histogram(s: &mut String, heading: &str, h: &BTreeMap<i64, usize>) {
    if h.is_empty() {
        return;
    }
    let entries: Vec<String> = h.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    let _ = writeln!(s, "{heading:<12} {}", entries.join(", "));
}

/// A label on one line and at most 60 characters.
fn shorten(label: &str) -> String {
    let one_line: String = label
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= 60 {
        return one_line;
    }
    let mut short: String = one_line.chars().take(59).collect();
    short.push('…');
    short
}

/// `1.31 ms` below a tenth of a second, `12.34 s` below a minute, `5m07s` or
/// `2h03m` above.
fn seconds(x: f64) -> String {
    if x < 0.099_995 && x > 0.0 {
        return format!("{:.2} ms", x * 1000.0);
    }
    if x < 59.995 {
        return format!("{x:.2} s");
    }
    let whole = x.round() as u64;
    let (h, m, s) = (whole / 3600, whole / 60 % 60, whole % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else {
        format!("{m}m{s:02}s")
    }
}

/// Binary units: `512 B`, `1.5 KiB`, `2.0 GiB`.
fn bytes(x: f64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if x < 1024.0 {
        return format!("{x:.0} B");
    }
    let mut value = x / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::{bytes, micros, ranked, seconds, shorten};
    use super::{Figure, Report};
    use crate::jobkey::JobKey;
    use crate::logtool::tests::{line, log};
    use crate::logtool::{merge, read_log, report, Expected, Merged};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn merged(lines: &[String]) -> Merged {
        merge(vec![log("run.jsonl", lines)], None)
    }

    #[test]
    fn counts_and_histograms() {
        let m = merged(&[
            line("a", Some(0), 1000, ""),
            line("b", Some(0), 1000, ""),
            line("c", Some(2), 1000, ""),
            line("d", None, 1000, ",\"outcome\":\"timed_out\""),
            line("e", None, 1000, ",\"outcome\":\"stopped\""),
            line("f", Some(2), 1000, ""),
        ]);
        let r = report(&m, 3);
        assert_eq!(
            (r.jobs, r.ok, r.failed, r.timed_out, r.stopped, r.low_memory),
            (6, 2, 2, 1, 1, 0)
        );
        assert_eq!(r.missing, None);
        assert_eq!(r.exit_codes, BTreeMap::from([(0, 2), (2, 2)]));
        assert_eq!(r.signals, BTreeMap::from([(15, 2)]));
    }

    #[test]
    fn missing_jobs_are_counted_when_expected_jobs_are_given() {
        let l = log("l", &[line("a", Some(0), 1000, "")]);
        let expected: Vec<Expected> = ["a", "b", "c"]
            .iter()
            .map(|x| Expected {
                key: JobKey::of_argv(["work", x]),
                label: x.to_string(),
            })
            .collect();
        let r = report(&merge(vec![l], Some(&expected)), 5);
        assert_eq!(r.missing, Some(2));
        assert_eq!(r.to_json()["counts"]["missing"], json!(2));
        assert!(
            r.render_text().contains(", 2 missing\n"),
            "{}",
            r.render_text()
        );
    }

    #[test]
    fn cpu_counts_whole_trees_where_the_log_has_them() {
        let m = merged(&[
            // The leader used 1.25 s, its detached grandchild much more.
            line(
                "a",
                Some(0),
                1000,
                ",\"tree_user_s\":30.0,\"tree_sys_s\":2.0,\"tree_peak_bytes\":null",
            ),
            line(
                "b",
                Some(0),
                1000,
                ",\"tree_user_s\":4.0,\"tree_sys_s\":0.5,\"tree_peak_bytes\":3221225472",
            ),
            line("c", Some(0), 1000, ""),
        ]);
        let r: Report = report(&m, 2);
        assert_eq!(r.whole_tree_jobs, 2);
        assert_eq!((r.user_s, r.sys_s), (35.0, 2.75));
        let top: Vec<(&str, f64)> = r
            .top_cpu
            .iter()
            .map(|f| (f.label.as_str(), f.value))
            .collect();
        assert_eq!(top, [("a", 32.0), ("b", 4.5)]);
        // A null tree peak falls back to the leader's peak RSS.
        assert_eq!(
            r.peak_memory,
            Some(Figure {
                key: JobKey::of_argv(["work", "b"]),
                label: "b".into(),
                value: 3_221_225_472.0
            })
        );
    }

    #[test]
    fn slowest_jobs_and_the_span() {
        let with_runtime = |input: &str, start_ms: u32, runtime: &str| {
            line(input, Some(0), start_ms, "")
                .replace("\"runtime_s\":1.5", &format!("\"runtime_s\":{runtime}"))
        };
        let m = merged(&[
            with_runtime("a", 0, "2.0"),
            with_runtime("b", 1000, "10.0"),
            with_runtime("c", 2000, "2.0"),
            with_runtime("d", 3000, "0.0"),
        ]);
        let r = report(&m, 2);
        let slowest: Vec<&str> = r.slowest.iter().map(|f| f.label.as_str()).collect();
        // Ties by label; a zero runtime is not ranked.
        assert_eq!(slowest, ["b", "a"]);
        assert_eq!(r.runtime_s, 14.0);
        assert_eq!(r.span_s, Some(11.0));
        assert_eq!(ranked(r.slowest.clone(), 0), vec![]);
    }

    #[test]
    fn text_for_people() {
        let m = merged(&[
            line("in-1", Some(0), 1000, ""),
            line("in-2", Some(3), 2500, ""),
            line("in-3", None, 4000, ",\"outcome\":\"timed_out\""),
        ]);
        let text = report(&m, 2).render_text();
        let expect = "\
jobs         3 from 1 log (3 attempts): 1 ok, 1 failed, 1 timed out, 0 stopped
cpu          3.75 s (user 3.00 s, system 0.75 s; job leaders only)
top cpu          1.25 s  in-1
                 1.25 s  in-2
peak memory     1.0 MiB  in-1
runtime      4.50 s over all jobs; 4.50 s from the first start to the last end
slowest          1.50 s  in-1
                 1.50 s  in-2
exit codes   0: 1, 3: 1
signals      15: 1
";
        assert_eq!(text, expect, "\n{text}");
    }

    #[test]
    fn problems_show_in_the_text() {
        let lines = [line("a", Some(0), 1000, "")];
        let m = merge(vec![log("x", &lines), log("y", &lines)], None);
        let text = report(&m, 5).render_text();
        assert!(
            text.contains("problems     1 duplicates, 0 conflicts, 0 malformed lines"),
            "{text}"
        );
    }

    #[test]
    fn json_for_programs() {
        let m = merged(&[
            line("in-1", Some(0), 1000, ""),
            line("in-2", None, 2000, ""),
        ]);
        let key = |x: &str| JobKey::of_argv(["work", x]).to_string();
        let expect = json!({
            "files": 1, "jobs": 2, "attempts": 2,
            "counts": {
                "ok": 1, "failed": 1, "timed_out": 0, "stopped": 0, "low_memory": 0,
                "missing": null,
            },
            "problems": {"duplicates": 0, "conflicts": 0, "malformed": 0},
            "cpu": {
                "total_s": 2.5, "user_s": 2.0, "sys_s": 0.5, "whole_tree_jobs": 0,
                "top": [
                    {"key": key("in-1"), "label": "in-1", "cpu_s": 1.25},
                    {"key": key("in-2"), "label": "in-2", "cpu_s": 1.25},
                ],
            },
            "peak_memory": {"key": key("in-1"), "label": "in-1", "bytes": 1048576},
            "runtime": {
                "total_s": 3.0, "span_s": 2.5,
                "slowest": [
                    {"key": key("in-1"), "label": "in-1", "runtime_s": 1.5},
                    {"key": key("in-2"), "label": "in-2", "runtime_s": 1.5},
                ],
            },
            "exit_codes": {"0": 1},
            "signals": {"15": 1},
        });
        assert_eq!(report(&m, 5).to_json(), expect);
    }

    #[test]
    fn an_empty_log() {
        let m = merge(vec![read_log("empty", "".as_bytes()).unwrap()], None);
        let r = report(&m, 5);
        assert_eq!((r.jobs, r.span_s, r.peak_memory.clone()), (0, None, None));
        assert_eq!(
            r.render_text(),
            "jobs         0 from 1 log (0 attempts): 0 ok, 0 failed, 0 timed out, 0 stopped\n\
             cpu          0.00 s (user 0.00 s, system 0.00 s; job leaders only)\n\
             runtime      0.00 s over all jobs\n"
        );
    }

    #[test]
    fn units() {
        assert_eq!(seconds(0.0), "0.00 s");
        assert_eq!(seconds(0.001_314), "1.31 ms");
        assert_eq!(seconds(0.099_99), "99.99 ms");
        assert_eq!(seconds(0.1), "0.10 s");
        assert_eq!(micros(0.163_457_999_999_999_96), 0.163_458);
        assert_eq!(seconds(59.99), "59.99 s");
        assert_eq!(seconds(59.996), "1m00s");
        assert_eq!(seconds(307.4), "5m07s");
        assert_eq!(seconds(7_380.0), "2h03m");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
        assert_eq!(bytes(2f64.powi(60)), "1024.0 PiB");
        assert_eq!(shorten("a\tb\nc"), "a b c");
        let long = "x".repeat(80);
        assert_eq!(shorten(&long).chars().count(), 60);
    }
}
