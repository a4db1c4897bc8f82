//! `brood log merge` and `brood log report`, over logs that real runs wrote.

use crate::support::{brood, brood_in_engine, Field, TempDir};
use brood_testkit::jsonl;
use std::collections::BTreeMap;

/// A job that fails with status 4 while the file `<dir>/fail.<input>`
/// exists, and succeeds otherwise: the same command (and key) either way.
fn flaky(dir: &TempDir) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        "test ! -e \"$2/fail.$1\" || exit 4".into(),
        "sh".into(),
        "{}".into(),
        dir.s(""),
    ]
}

/// `brood run -j 1 --joblog LOG JOB ::: INPUTS`: the log in input order.
fn run(log: &str, job: &[String], inputs: &[&str]) {
    brood_in_engine(&[])
        .args(["run", "-j", "1", "--joblog", log, "--"])
        .args(job)
        .arg(":::")
        .args(inputs)
        .output()
        .unwrap();
}

/// `brood log merge ARGS`: (status, stdout records, stderr).
fn merge(args: &[&str]) -> (Option<i32>, Vec<serde_json::Value>, String) {
    let out = brood().args(["log", "merge"]).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let records = stdout.lines().map(jsonl::parse_strict).collect();
    (
        out.status.code(),
        records,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn by_input(records: &[serde_json::Value]) -> BTreeMap<String, String> {
    records
        .iter()
        .map(|r| {
            (
                r.field("input").str().to_string(),
                r.field("outcome").str().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_retried_failure_merges_cleanly_with_its_success() {
    let dir = TempDir::new("merge-retry");
    let job = flaky(&dir);
    std::fs::write(dir.join("fail.b"), "").unwrap();
    run(&dir.s("first.jsonl"), &job, &["a", "b"]);
    std::fs::remove_file(dir.join("fail.b")).unwrap();
    run(&dir.s("second.jsonl"), &job, &["b"]);
    let (code, records, err) = merge(&[&dir.s("first.jsonl"), &dir.s("second.jsonl")]);
    assert_eq!(code, Some(0), "{err}");
    // Off a terminal, a clean merge says nothing.
    assert_eq!(err, "");
    assert_eq!(records.len(), 2);
    let outcomes = by_input(&records);
    assert_eq!(outcomes["a"], "ok");
    assert_eq!(outcomes["b"], "ok", "the later attempt wins");
    // Each record is copied as the run wrote it.
    let second = std::fs::read_to_string(dir.join("second.jsonl")).unwrap();
    let b = records
        .iter()
        .find(|r| r.field("input").str() == "b")
        .unwrap();
    assert_eq!(jsonl::parse_strict(second.trim_end()), *b);
}

#[test]
fn duplicates_conflicts_missing_and_unexpected_jobs_are_reported() {
    let dir = TempDir::new("merge-problems");
    let job = flaky(&dir);
    run(&dir.s("one.jsonl"), &job, &["a", "b"]);
    // Run again: a succeeds twice (a duplicate); b, which had succeeded,
    // now fails (a conflict: the later failure is kept).
    std::fs::write(dir.join("fail.b"), "").unwrap();
    run(&dir.s("two.jsonl"), &job, &["a", "b"]);
    // The run's own arguments, with one more input that never ran.
    let mut args = vec![dir.s("one.jsonl"), dir.s("two.jsonl"), "--".into()];
    args.extend(job.iter().cloned());
    args.extend([":::".into(), "a".into(), "b".into(), "c".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, records, err) = merge(&args);
    assert_eq!(code, Some(1), "{err}");
    let outcomes = by_input(&records);
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes["a"], "ok");
    assert_eq!(outcomes["b"], "failed");
    let one = dir.s("one.jsonl");
    let two = dir.s("two.jsonl");
    for want in [
        format!("brood: duplicate: job \"a\" ran again after it succeeded ({one}:1): {two}:1"),
        format!("brood: conflict: job \"b\" succeeded ({one}:2), then failed ({two}:2)"),
        "brood: missing: job \"c\" never ran".to_string(),
        "merged 2 logs: 2 jobs from 4 attempts; 1 duplicate, 1 conflict, 0 malformed lines, \
         1 missing, 0 unexpected"
            .to_string(),
    ] {
        assert!(err.contains(&want), "{want:?} not in\n{err}");
    }
    // Expected inputs that leave out a logged job: it is unexpected.
    let mut args = vec![one.clone(), "--".into()];
    args.extend(job.iter().cloned());
    args.extend([":::".into(), "a".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = merge(&args);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("unexpected: job \"b\"") && err.contains("is not among the expected jobs"),
        "{err}"
    );
}

#[test]
fn shard_logs_merge_into_the_whole_run() {
    let dir = TempDir::new("merge-shards");
    let inputs: String = (0..30).map(|i| format!("in-{i}\n")).collect();
    std::fs::write(dir.join("in"), inputs).unwrap();
    let pattern = dir.s("log.{shard}.jsonl");
    let file = dir.s("in");
    // What each task runs; the merge takes the same words, --shard and all.
    let task = |shard: &str| -> Vec<String> {
        [
            "--shard", shard, "--resume", "--joblog", &pattern, "-a", &file, "echo",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    for i in 0..3 {
        brood_in_engine(&[])
            .arg("run")
            .args(task(&format!("{i}/3")))
            .assert()
            .success();
    }
    let logs: Vec<String> = (0..3).map(|i| dir.s(&format!("log.{i}.jsonl"))).collect();
    let mut args: Vec<String> = logs.clone();
    args.push("--".into());
    args.extend(task("0/3"));
    let (code, records, err) = merge(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(0), "{err}");
    let mut got: Vec<String> = by_input(&records).into_keys().collect();
    got.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("in-{i}")).collect();
    want.sort();
    assert_eq!(got, want);
    // Without shard 1's log, exactly shard 1's jobs are missing.
    let shard1: Vec<String> = brood_testkit::jsonl::read_file(&dir.join("log.1.jsonl"))
        .iter()
        .map(|r| r.field("input").str().to_string())
        .collect();
    let mut args = vec![logs[0].clone(), logs[2].clone(), "--".into()];
    args.extend(task("0/3"));
    let (code, records, err) = merge(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(1));
    assert_eq!(records.len(), 30 - shard1.len());
    let missing: Vec<&str> = err
        .lines()
        .filter_map(|l| l.strip_prefix("brood: missing: job \""))
        .filter_map(|l| l.strip_suffix("\" never ran"))
        .collect();
    let mut missing: Vec<String> = missing.into_iter().map(String::from).collect();
    missing.sort();
    let mut shard1 = shard1;
    shard1.sort();
    assert_eq!(missing, shard1);
}

#[test]
fn merge_reports_malformed_lines_and_reads_stdin() {
    let dir = TempDir::new("merge-bad");
    run(&dir.s("log.jsonl"), &["echo".into()], &["a", "b"]);
    let mut text = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    text.insert_str(0, "not json\n");
    let out = brood()
        .args(["log", "merge", "-"])
        .write_stdin(text)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skipped -:1: not JSON"), "{err}");
}

#[test]
fn log_tools_fail_clearly() {
    let dir = TempDir::new("merge-errors");
    for (args, says) in [
        (vec![dir.s("nope.jsonl")], "cannot read job log"),
        (vec![], "LOG"),
        (
            vec![dir.s("nope.jsonl"), "--".into(), "--bogus".into()],
            "RUN-ARGS: unexpected argument '--bogus'",
        ),
        (
            vec!["-".into(), "--".into(), "echo".into()],
            "stdin cannot hold both",
        ),
    ] {
        let out = brood()
            .args(["log", "merge"])
            .args(&args)
            .write_stdin("")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

/// A run with one job of each outcome, and the run's arguments (with one
/// input that never ran).
fn mixed_run(dir: &TempDir) -> (Vec<String>, Vec<String>) {
    let log = dir.s("log.jsonl");
    let job = [
        "sh",
        "-c",
        "case $1 in ok) ;; bad) exit 3;; slow) sleep 5;; cut) kill -TERM $$;; esac",
        "sh",
    ];
    brood_in_engine(&[])
        .args(["run", "--timeout", "500ms", "--joblog", &log, "--"])
        .args(job)
        .args([":::", "ok", "bad", "slow", "cut"])
        .assert()
        .code(3);
    let mut run_args: Vec<String> = vec!["--".into()];
    run_args.extend(job.iter().map(|s| s.to_string()));
    run_args.extend([":::", "ok", "bad", "slow", "cut", "never"].map(String::from));
    (vec![log], run_args)
}

#[test]
fn report_as_json() {
    let dir = TempDir::new("report-json");
    let (logs, run_args) = mixed_run(&dir);
    let out = brood()
        .args(["log", "report", "--json"])
        .args(&logs)
        .args(&run_args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = jsonl::parse_strict(&String::from_utf8_lossy(&out.stdout));
    let counts = report.field("counts");
    let count = |name: &str| counts.field(name).num();
    assert_eq!(
        [
            count("ok"),
            count("failed"),
            count("timed_out"),
            count("stopped"),
            count("low_memory"),
            count("missing"),
        ],
        [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    );
    assert_eq!(report.field("jobs").num(), 4.0);
    assert_eq!(report.field("exit_codes").field("0").num(), 1.0);
    assert_eq!(report.field("exit_codes").field("3").num(), 1.0);
    assert_eq!(report.field("signals").field("15").num(), 2.0);
    // The slowest job is the one that ran into its time limit.
    let slowest = report.field("runtime").field("slowest").arr();
    assert_eq!(slowest[0].field("label").str(), "slow");
    assert!(slowest[0].field("runtime_s").num() >= 0.5);
    assert!(report.field("peak_memory").field("bytes").num() > 0.0);
    assert!(report.field("cpu").field("top").arr().len() <= 5);
}

#[test]
fn report_as_text() {
    let dir = TempDir::new("report-text");
    let (logs, run_args) = mixed_run(&dir);
    let out = brood()
        .args(["log", "report", "--top", "2"])
        .args(&logs)
        .args(&run_args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "jobs         4 from 1 log (4 attempts): 1 ok, 1 failed, 1 timed out, 1 stopped, \
         1 missing"
    );
    for heading in [
        "cpu ",
        "top cpu ",
        "peak memory ",
        "runtime ",
        "slowest ",
        "exit codes ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(heading)),
            "{heading:?} in\n{text}"
        );
    }
    assert!(text.contains("exit codes   0: 1, 3: 1"), "{text}");
    assert!(text.contains("signals      15: 2"), "{text}");
    // --top 2: two lines under slowest.
    let slowest = text
        .lines()
        .skip_while(|l| !l.starts_with("slowest"))
        .take_while(|l| l.starts_with("slowest") || l.starts_with(' '))
        .count();
    assert_eq!(slowest, 2, "{text}");
}
